// The Go reference of the echo comparison: net's echo server, one goroutine
// per connection, a 4 KiB buffer as the corelet server has.
//
//	echo_go HOST:PORT    prints "echo_go: listening on HOST:PORT"
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	addr := "127.0.0.1:7003"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_go:", err)
		os.Exit(1)
	}
	fmt.Printf("echo_go: listening on %s (go)\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}
