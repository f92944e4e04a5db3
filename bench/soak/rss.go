package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// memSample is one reading of the gateway's /proc/<pid>/status (KiB), of
// the part of its RSS that is the bbolt store's memory map, and of its open
// file descriptors.
type memSample struct {
	At      time.Duration `json:"at_ns"`
	VmRSS   int64         `json:"vm_rss_kib"`
	RssAnon int64         `json:"rss_anon_kib"`
	RssFile int64         `json:"rss_file_kib"`
	VmHWM   int64         `json:"vm_hwm_kib"`
	Threads int64         `json:"threads"`
	FDs     int64         `json:"fds"`
	// StoreRss is the resident part of the bbolt file's memory map (from
	// /proc/<pid>/smaps): the store's own pages, which grow with the data
	// kept (runs for run_retention, payloads for payload_ttl) and which the
	// kernel can drop at will, being clean file pages.
	StoreRss int64 `json:"store_rss_kib"`
	// StoreSize is the bbolt file's size.
	StoreSize int64 `json:"store_size_kib"`
}

// Net is the RSS that is not the store's map: heap, stacks, the binary's
// pages. A leak shows here.
func (s memSample) Net() int64 { return s.VmRSS - s.StoreRss }

// readMem reads the memory figures of pid from /proc; storePath, when not
// empty, is the bbolt file whose mapping is counted apart.
func readMem(pid int, storePath string) (memSample, error) {
	var s memSample
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	fields := map[string]*int64{
		"VmRSS:": &s.VmRSS, "RssAnon:": &s.RssAnon, "RssFile:": &s.RssFile,
		"VmHWM:": &s.VmHWM, "Threads:": &s.Threads,
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) < 2 {
			continue
		}
		if p, ok := fields[parts[0]]; ok {
			if v, err := strconv.ParseInt(parts[1], 10, 64); err == nil {
				*p = v
			}
		}
	}
	if s.VmRSS == 0 {
		return s, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = int64(len(ents))
	}
	if storePath != "" {
		if smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid)); err == nil {
			s.StoreRss = mappedRss(smaps, storePath)
		}
		if fi, err := os.Stat(storePath); err == nil {
			s.StoreSize = fi.Size() / 1024
		}
	}
	return s, nil
}

// mappedRss sums the Rss (KiB) of the mappings of path in an smaps file.
func mappedRss(smaps []byte, path string) int64 {
	var total int64
	in := false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		// A mapping header starts with "start-end perms"; the attribute
		// lines that follow start with "Name:".
		if !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && strings.Join(fields[5:], " ") == path
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			if v, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				total += v
			}
		}
	}
	return total
}

// memVerdict is the memory summary of the load phase.
type memVerdict struct {
	// Points are the samples nearest 25, 50, 75 and 100 % of the load.
	Points [4]memSample `json:"points"`
	// GrowthPct is VmRSS growth from the 50 % to the 100 % sample.
	GrowthPct float64 `json:"last_half_growth_pct"`
	// NetGrowthPct is the same for VmRSS without the store's map: the
	// figure that decides Flat.
	NetGrowthPct float64 `json:"last_half_net_growth_pct"`
	// AnonGrowthPct is the same for RssAnon (heap and stacks only).
	AnonGrowthPct float64 `json:"last_half_anon_growth_pct"`
	// SlopeMiBPerMin and NetSlopeMiBPerMin are least-squares slopes of
	// VmRSS and of the net RSS over the last half of the load.
	SlopeMiBPerMin    float64 `json:"last_half_slope_mib_per_min"`
	NetSlopeMiBPerMin float64 `json:"last_half_net_slope_mib_per_min"`
	// Flat: NetGrowthPct below the threshold.
	Flat      bool    `json:"flat"`
	Threshold float64 `json:"threshold_pct"`
}

// judgeMemory summarizes samples taken during a load of length d. Memory
// is flat when the gateway's RSS without the store's memory map grows less
// than thresholdPct from the middle of the load to its end. The first half
// holds the warm-up (connection pools, code paths touched for the first
// time, the Go heap reaching its working size), so only growth that keeps
// going afterwards points at a leak. The store's map is set apart because
// it grows with the data the store is configured to keep, by design, and
// is reported on its own.
func judgeMemory(samples []memSample, d time.Duration, thresholdPct float64) (memVerdict, error) {
	v := memVerdict{Threshold: thresholdPct}
	if len(samples) < 4 {
		return v, fmt.Errorf("only %d memory samples: run longer or sample more often", len(samples))
	}
	for i, frac := range []float64{0.25, 0.5, 0.75, 1} {
		v.Points[i] = nearest(samples, time.Duration(frac*float64(d)))
	}
	mid, end := v.Points[1], v.Points[3]
	v.GrowthPct = pctGrowth(mid.VmRSS, end.VmRSS)
	v.NetGrowthPct = pctGrowth(mid.Net(), end.Net())
	v.AnonGrowthPct = pctGrowth(mid.RssAnon, end.RssAnon)
	var xs, ys, nets []float64
	for _, s := range samples {
		if s.At >= d/2 {
			xs = append(xs, s.At.Minutes())
			ys = append(ys, float64(s.VmRSS)/1024)
			nets = append(nets, float64(s.Net())/1024)
		}
	}
	v.SlopeMiBPerMin = slope(xs, ys)
	v.NetSlopeMiBPerMin = slope(xs, nets)
	v.Flat = v.NetGrowthPct < thresholdPct
	return v, nil
}

func pctGrowth(from, to int64) float64 {
	if from <= 0 {
		return math.Inf(1)
	}
	return 100 * float64(to-from) / float64(from)
}

// nearest returns the sample taken closest to at.
func nearest(samples []memSample, at time.Duration) memSample {
	best := samples[0]
	for _, s := range samples[1:] {
		if absDur(s.At-at) < absDur(best.At-at) {
			best = s
		}
	}
	return best
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// slope is the least-squares slope of ys over xs (0 with fewer than two
// distinct xs).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}
