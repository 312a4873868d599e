// SPDX-License-Identifier: BSD-3-Clause
// server_go.go - Go's net/http as a server under test for the HTTP/2 client
// matrix (servers.py's "go" profile): the contract at the top of servers.py,
// h2 over TLS (net/http's own) and h2c with prior knowledge (x/net's h2c).
// The 401 and the 413 (by Content-Length) are answered without reading the
// body, as an application would; what net/http does with the rest is its own.
//
//	server_go PORT TLS_PORT LIM_PORT LIM_TLS_PORT CERT KEY ROOT UP TOKEN LIMIT
package main

import (
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func handler(root, up, token string, limit int64) http.Handler {
	files := http.FileServer(http.Dir(root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/up/") {
			files.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if limit > 0 && r.ContentLength > limit {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		dir := filepath.Join(up, "up")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		f, err := os.CreateTemp(dir, ".part-")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var body io.Reader = r.Body
		if limit > 0 {
			body = http.MaxBytesReader(w, r.Body, limit)
		}
		_, err = io.Copy(f, body)
		f.Close()
		if err != nil {
			os.Remove(f.Name())
			http.Error(w, "too large or cut", http.StatusRequestEntityTooLarge)
			return
		}
		if err := os.Rename(f.Name(), filepath.Join(dir, filepath.Base(r.URL.Path))); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
}

func main() {
	a := os.Args[1:]
	if len(a) != 10 {
		log.Fatal("usage: server_go PORT TLS_PORT LIM_PORT LIM_TLS_PORT CERT KEY ROOT UP TOKEN LIMIT")
	}
	limit, _ := strconv.ParseInt(a[9], 10, 64)
	for _, inst := range []struct {
		plain, tls string
		limit      int64
	}{{a[0], a[1], 0}, {a[2], a[3], limit}} {
		h := handler(a[6], a[7], a[8], inst.limit)
		tlsSrv := &http.Server{Addr: "127.0.0.1:" + inst.tls, Handler: h}
		go func() { log.Fatal(tlsSrv.ListenAndServeTLS(a[4], a[5])) }()
		plain := &http.Server{Addr: "127.0.0.1:" + inst.plain, Handler: h2c.NewHandler(h, &http2.Server{})}
		go func() { log.Fatal(plain.ListenAndServe()) }()
	}
	select {}
}
