// burst: the source of real, go-related denials for the enforcing tier. Built
// in the guest as a binary named `go` (so the kernel's AVCs carry comm="go",
// as a real Go toolchain's would), run in a confined domain (user_t, entered
// with runcon through ggvmtest.te). It tries to create N files in DIR, a
// directory that domain may not write: each attempt is one denial. Between
// attempts it waits a little, so a log rotation can land mid-burst.
//
// With a fourth argument `gate` it first waits for a line on stdin, so the
// test can start it (slow under TCG), drift the files, then let it write at
// once, before goguardd heals them.
//
//	go DIR N PAUSE_MS [gate]
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	dir := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	pause, _ := strconv.Atoi(os.Args[3])
	if len(os.Args) > 4 && os.Args[4] == "gate" {
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	denied := 0
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
		} else if os.IsPermission(err) {
			denied++
		}
		time.Sleep(time.Duration(pause) * time.Millisecond)
	}
	fmt.Printf("%d attempts, %d denied\n", n, denied)
}
