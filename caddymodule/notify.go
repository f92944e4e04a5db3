package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// failureNote is the JSON the `notify` URL receives when a run fails for
// good. It carries what an operator needs to act, and no secret: no
// payload, no request headers.
type failureNote struct {
	Event     string           `json:"event"` // "run_failed"
	RunID     string           `json:"run_id"`
	Trigger   string           `json:"trigger"`
	Status    launch.RunStatus `json:"status"`
	Host      string           `json:"host"`
	Path      string           `json:"path"`
	CreatedAt time.Time        `json:"created_at"`
	Result    []actionResult   `json:"result"`
}

var notifyClient = &http.Client{Timeout: 10 * time.Second}

// onFinal runs when a run reaches a final status: a failed run is reported
// once to the notify URL (in the background, with a few retries), and the
// run is marked so that a restart does not report it again.
func (a *App) onFinal(run *launch.Run) {
	if a.notifyURL == "" || run.Notified || (run.Status != launch.StatusError && run.Status != launch.StatusCompleteWithError) {
		return
	}
	note := failureNote{
		Event: "run_failed", RunID: run.ID, Trigger: run.Trigger, Status: run.Status,
		Host: run.Host, Path: run.Path, CreatedAt: run.CreatedAt, Result: resultsOf(run),
	}
	runID, updatedAt := run.ID, run.UpdatedAt
	go func() {
		if err := a.sendNote(note); err != nil {
			a.logger.Warn("notify failed", zap.String("run_id", runID), zap.Error(err))
			return
		}
		// Through the dispatcher, which serializes it with retries: a run
		// retried meanwhile is not overwritten with this stale copy.
		if _, err := a.dispatcher.MarkNotified(context.Background(), runID, updatedAt); err != nil {
			a.logger.Warn("recording the notification failed", zap.String("run_id", runID), zap.Error(err))
		}
	}()
}

func (a *App) sendNote(note failureNote) error {
	body, err := json.Marshal(note)
	if err != nil {
		return err
	}
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(1<<attempt) * 500 * time.Millisecond):
			case <-a.stop:
				return fmt.Errorf("stopped before the note was delivered: %w", last)
			}
		}
		req, err := http.NewRequest(http.MethodPost, a.notifyURL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "caddy-valohai")
		res, err := notifyClient.Do(req)
		if err != nil {
			// *url.Error quotes the whole URL, which may hold the notify
			// endpoint's secret (Slack webhooks keep it in the path).
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = fmt.Errorf("%s %s: %w", uerr.Op, urlForLog(req.URL), uerr.Err)
			}
			last = err
			continue
		}
		res.Body.Close()
		if res.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("notify answered %d", res.StatusCode)
	}
	return last
}
