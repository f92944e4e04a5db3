package caddymodule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// A notify URL's path or query may be its credential (Slack incoming
// webhooks): a failed delivery must not put it in the error that is logged.
func TestNotifyErrorHidesTheURLSecret(t *testing.T) {
	secret := "T000/B000/XXXXSECRETXXXX"
	a := &App{
		notifyURL: fmt.Sprintf("http://127.0.0.1:%d/services/%s?token=qsecret", freePort(t), secret),
		logger:    zap.NewNop(),
		stop:      make(chan struct{}),
	}
	go func() { time.Sleep(200 * time.Millisecond); close(a.stop) }()
	err := a.sendNote(failureNote{Event: "run_failed"})
	if err == nil {
		t.Fatal("delivery to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "qsecret") {
		t.Fatalf("the notify error shows the URL's secret: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("the error should still say where it failed: %v", err)
	}
}

func TestConfigErrorHidesAMalformedURL(t *testing.T) {
	_, err := expandURL(caddy.NewReplacer(), "notify", "hooks.example.com/services/T0/B0/SECRET", zap.NewNop())
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v", err)
	}
}
