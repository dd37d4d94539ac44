module ggvm/burst

go 1.19
