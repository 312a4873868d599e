// SPDX-License-Identifier: BSD-3-Clause
// Go's net/http client for test_trailers.py: one request, its answer's
// trailers (resp.Trailer, read after the body's end) as JSON on stdout.
// HTTP/1.1 on plain URLs, h2 over TLS by ALPN (-ca), h2c with prior
// knowledge (-h2c: golang.org/x/net/http2, Debian's golang-golang-x-net-dev,
// built in GOPATH mode: Go 1.19's net/http has no h2c client).
//
// Usage: trailers_client [-ca FILE] [-h2c] [-post BODY -trailer K=V...] URL
// -post sends BODY with no length (chunked in HTTP/1.1, DATA frames in h2)
// and the -trailer fields as request trailers after it.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

type kv []string

func (k *kv) String() string     { return strings.Join(*k, ",") }
func (k *kv) Set(v string) error { *k = append(*k, v); return nil }

type result struct {
	Status  int                 `json:"status"`
	Proto   string              `json:"proto"`
	Body    string              `json:"body"`
	BodyLen int                 `json:"body_len"`
	Trailer map[string][]string `json:"trailer"`
	Error   string              `json:"error"`
}

func main() {
	ca := flag.String("ca", "", "CA file (TLS)")
	h2c := flag.Bool("h2c", false, "h2c with prior knowledge")
	post := flag.String("post", "", "a body to send without a length")
	var trailers kv
	flag.Var(&trailers, "trailer", "K=V: a request trailer (repeatable)")
	flag.Parse()
	url := flag.Arg(0)

	var rt http.RoundTripper
	switch {
	case *h2c:
		rt = &http2.Transport{AllowHTTP: true,
			DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) {
				return net.Dial(network, addr)
			}}
	case *ca != "":
		pem, err := os.ReadFile(*ca)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		rt = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	default:
		rt = &http.Transport{}
	}
	client := &http.Client{Transport: rt, Timeout: 60 * time.Second}

	method := "GET"
	var body io.Reader
	if *post != "" || len(trailers) > 0 {
		method = "POST"
		body = io.MultiReader(strings.NewReader(*post)) // no length: chunked
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.ContentLength = -1
		req.Trailer = http.Header{}
		for _, t := range trailers {
			k, v, _ := strings.Cut(t, "=")
			req.Trailer.Add(k, v)
		}
	}
	var out result
	resp, err := client.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body) // resp.Trailer is filled at its end
		resp.Body.Close()
		out.Status, out.Proto, out.BodyLen, out.Trailer = resp.StatusCode, resp.Proto, len(b), resp.Trailer
		if len(b) <= 4096 {
			out.Body = string(b)
		}
	}
	if err != nil {
		out.Error = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
