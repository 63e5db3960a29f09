// The Go reference of the HTTP comparison: net/http answering "hello".
//
//	http_go HOST:PORT    prints "http_go: listening on HOST:PORT"
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:8083"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_go:", err)
		os.Exit(1)
	}
	fmt.Printf("http_go: listening on http://%s/ (go)\n", l.Addr())
	hello := []byte("hello")
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	}))
}
