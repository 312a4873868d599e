// SPDX-License-Identifier: BSD-3-Clause
// Go's net/http client in the HTTP/2 client matrix (test_h2_clients.py),
// standard library only: HTTP/2 over TLS by ALPN. h2c with prior knowledge
// needs golang.org/x/net/http2 (Go 1.19's net/http has no such client), so
// this runner refuses h2c plans.
//
// Usage: client PLAN.json. The plan (see clients.py) names the CA and the
// token and lists cases; each case is one request on a fresh Transport,
// then a GET of the follow-up URL on the same Transport. One JSON line per
// case on stdout: status, seconds, error, and for the follow-up whether
// httptrace saw the connection reused.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"time"
)

type plan struct {
	CA      string  `json:"ca"`
	Token   string  `json:"token"`
	H2C     bool    `json:"h2c"`
	Timeout float64 `json:"timeout"`
	Cases   []struct {
		ID       string `json:"id"`
		Method   string `json:"method"`
		URL      string `json:"url"`
		File     string `json:"file"`
		Auth     bool   `json:"auth"`
		Followup string `json:"followup"`
	} `json:"cases"`
}

type result struct {
	ID           string  `json:"id"`
	Status       int     `json:"status"`
	Time         float64 `json:"time"`
	Proto        string  `json:"proto"`
	Error        string  `json:"error"`
	SHA256       string  `json:"sha256"`
	FollowStatus int     `json:"followup_status"`
	FollowTime   float64 `json:"followup_time"`
	FollowError  string  `json:"followup_error"`
	FollowSHA256 string  `json:"followup_sha256"`
	Reused       *bool   `json:"reused"`
	FollowProto  string  `json:"followup_proto"`
}

// do sends one request; the answer's status, body hash, protocol, seconds,
// error text, and whether the connection was a reused one.
func do(c *http.Client, method, url, file, token string, limit time.Duration) (int, string, string, float64, string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	reused := false
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	var body io.ReadCloser
	var size int64
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return 0, "", "", 0, err.Error(), false
		}
		st, _ := f.Stat()
		size = st.Size()
		body = f
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, "", "", 0, err.Error(), false
	}
	if body != nil {
		req.ContentLength = size
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", time.Since(t0).Seconds(), err.Error(), reused
	}
	defer resp.Body.Close()
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	el := time.Since(t0).Seconds()
	msg := ""
	if err != nil {
		msg = "reading the answer: " + err.Error()
	}
	return resp.StatusCode, hex.EncodeToString(h.Sum(nil)), resp.Proto, el, msg, reused
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var p plan
	if err := json.Unmarshal(raw, &p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if p.H2C {
		fmt.Fprintln(os.Stderr, "h2c: Go 1.19's net/http has no prior-knowledge client (golang.org/x/net/http2 has)")
		os.Exit(3)
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(p.CA); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	limit := time.Duration(p.Timeout * float64(time.Second))
	out := json.NewEncoder(os.Stdout)
	for _, k := range p.Cases {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true, // a custom TLS config turns it off otherwise
		}
		c := &http.Client{Transport: tr}
		token := ""
		if k.Auth {
			token = p.Token
		}
		r := result{ID: k.ID}
		r.Status, r.SHA256, r.Proto, r.Time, r.Error, _ = do(c, k.Method, k.URL, k.File, token, limit)
		if k.Followup != "" {
			var reused bool
			r.FollowStatus, r.FollowSHA256, r.FollowProto, r.FollowTime, r.FollowError, reused =
				do(c, "GET", k.Followup, "", "", limit)
			r.Reused = &reused
		}
		tr.CloseIdleConnections()
		out.Encode(&r)
	}
}
