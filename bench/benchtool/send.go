package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sendResult is what send prints: how many requests got which status.
type sendResult struct {
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Non2xx   int            `json:"non2xx"`
	Errors   int            `json:"errors"`
	Statuses map[string]int `json:"statuses"`
	Seconds  float64        `json:"seconds"`
}

// readHeaderFile reads "Name: value" lines (what sign prints).
func readHeaderFile(path string) (http.Header, error) {
	h := http.Header{}
	if path == "" {
		return h, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not a Name: value line", path, line)
		}
		h.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return h, sc.Err()
}

// send POSTs body n times over c keep-alive connections and counts the
// statuses. It refuses any host but loopback: this tool loads only servers
// that the benchmark started on this machine.
func send(target string, n, c int, body []byte, header http.Header, timeout time.Duration) (sendResult, error) {
	u, err := url.Parse(target)
	if err != nil {
		return sendResult{}, err
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return sendResult{}, fmt.Errorf("refusing %s: only loopback targets", h)
	}
	if n <= 0 || c <= 0 {
		return sendResult{}, errors.New("-n and -c must be positive")
	}
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true},
	}
	var next atomic.Int64
	var mu sync.Mutex
	res := sendResult{Statuses: map[string]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				if err != nil {
					panic(err) // the URL parsed above: cannot happen
				}
				req.Header = header.Clone()
				if req.Header.Get("Content-Type") == "" {
					req.Header.Set("Content-Type", "application/json")
				}
				status := "error"
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = fmt.Sprint(resp.StatusCode)
				}
				mu.Lock()
				res.Sent++
				res.Statuses[status]++
				switch {
				case err != nil:
					res.Errors++
				case resp.StatusCode >= 200 && resp.StatusCode <= 299:
					res.OK++
				default:
					res.Non2xx++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func cmdSend(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	target := fs.String("url", "", "loopback URL to POST to")
	n := fs.Int("n", 10000, "requests in all")
	c := fs.Int("c", 16, "concurrent keep-alive connections")
	bodyPath := fs.String("body", "", "body file")
	headerPath := fs.String("headers", "", "file of Name: value lines")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*bodyPath)
	if err != nil {
		return err
	}
	header, err := readHeaderFile(*headerPath)
	if err != nil {
		return err
	}
	res, err := send(*target, *n, *c, body, header, *timeout)
	if err != nil {
		return err
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.OK != res.Sent {
		codes := make([]string, 0, len(res.Statuses))
		for k := range res.Statuses {
			codes = append(codes, k)
		}
		sort.Strings(codes)
		return fmt.Errorf("%d of %d requests were not answered 2xx (statuses %v)", res.Sent-res.OK, res.Sent, codes)
	}
	return nil
}
