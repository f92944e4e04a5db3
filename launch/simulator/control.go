package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// serveControl answers the unauthenticated /__simulator/ helpers, which let
// a test drive a simulator running inside Caddy over HTTP. They are not
// recorded and not subject to injected failures or delay.
func (s *Simulator) serveControl(w http.ResponseWriter, r *http.Request, rest string) {
	switch name := strings.TrimSuffix(rest, "/"); name {
	case "calls":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeReply(w, methodNotAllowed(r, http.MethodGet))
			return
		}
		writeReply(w, reply{status: http.StatusOK, body: s.Calls()})
	case "fail", "delay", "reset", "drop":
		if r.Method != http.MethodPost {
			writeReply(w, methodNotAllowed(r, http.MethodPost))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			writeReply(w, detail(http.StatusBadRequest, "could not read body: "+err.Error()))
			return
		}
		var rep reply
		switch name {
		case "fail":
			rep = s.controlFail(body)
		case "delay":
			rep = s.controlDelay(body)
		case "drop":
			rep = s.controlDrop(body)
		default:
			s.Reset()
			rep = s.knobs()
		}
		writeReply(w, rep)
	default:
		writeReply(w, notFound())
	}
}

func methodNotAllowed(r *http.Request, allowed string) reply {
	rep := detail(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
	rep.header = map[string]string{"Allow": allowed}
	return rep
}

// decodeStrict decodes a small control body, refusing unknown fields so a
// typo in a fault test is an error rather than a silently ignored knob.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("extra data after the JSON object")
	}
	return nil
}

// controlFail answers POST /__simulator/fail
// {"count":2,"status":503,"retry_after_seconds":2}; status defaults to 503.
func (s *Simulator) controlFail(body []byte) reply {
	var req struct {
		Count             int     `json:"count"`
		Status            int     `json:"status"`
		RetryAfterSeconds float64 `json:"retry_after_seconds"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return detail(http.StatusBadRequest, "invalid fail body: "+err.Error())
	}
	if req.Status == 0 {
		req.Status = http.StatusServiceUnavailable
	}
	switch {
	case req.Count < 0:
		return detail(http.StatusBadRequest, "count must not be negative")
	case req.Status < 400 || req.Status > 599:
		return detail(http.StatusBadRequest, "status must be between 400 and 599")
	case req.RetryAfterSeconds < 0 || req.RetryAfterSeconds > 1e6:
		return detail(http.StatusBadRequest, "retry_after_seconds must be between 0 and 1000000")
	}
	s.Fail(req.Count, req.Status, time.Duration(req.RetryAfterSeconds*float64(time.Second)))
	return s.knobs()
}

// controlDrop answers POST /__simulator/drop {"creates": n}: the next n
// creates take effect and lose their answer (see DropAfterCreate).
func (s *Simulator) controlDrop(body []byte) reply {
	var req struct {
		Creates int `json:"creates"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return detail(http.StatusBadRequest, err.Error())
	}
	s.DropAfterCreate(req.Creates)
	return s.knobs()
}

// controlDelay answers POST /__simulator/delay {"delay":"500ms"}; "0s"
// removes the delay. With "after_create": true the call takes effect first
// and only its answer is delayed (SetDelayAfterCreate).
func (s *Simulator) controlDelay(body []byte) reply {
	var req struct {
		Delay       string `json:"delay"`
		AfterCreate bool   `json:"after_create"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return detail(http.StatusBadRequest, "invalid delay body: "+err.Error())
	}
	d, err := time.ParseDuration(req.Delay)
	if err != nil || d < 0 {
		return detail(http.StatusBadRequest, fmt.Sprintf("delay must be a non-negative Go duration such as \"500ms\", got %q", req.Delay))
	}
	if req.AfterCreate {
		s.SetDelayAfterCreate(d)
	} else {
		s.SetDelay(d)
	}
	return s.knobs()
}

// knobs reports the current fault settings.
func (s *Simulator) knobs() reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return reply{status: http.StatusOK, body: map[string]any{
		"fail": map[string]any{
			"count":               s.failLeft,
			"status":              s.failStatus,
			"retry_after_seconds": s.failRetryAfter.Seconds(),
		},
		"delay":              s.delay.String(),
		"delay_after_create": s.delayAfter,
		"calls":              len(s.calls),
	}}
}
