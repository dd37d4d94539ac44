//! goguard-hygiene: Go cache hygiene (trimming GOCACHE by Go's rules, size caps,
//! module-cache verification). Work in progress.
