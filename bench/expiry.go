package bench

import (
	"context"
	"fmt"
	"time"
)

// Expiry creates ExpiryLeases leases of ExpiryTTL on one handle, then
// measures how long Vault takes to reap them once they expired, and the CPU
// the server and the plugin use meanwhile (each expired lease is a revoke
// call into the plugin and a storage delete).
func (e *Env) Expiry(ctx context.Context) error {
	const handle = "expiry"
	ttl := e.Cfg.ExpiryTTL
	if err := e.write(ctx, e.Reader.Client, "flowcred/bindings/"+handle, map[string]interface{}{
		"kind": "api_token", "token": "bench-expiry-token-SECRET", "ttl": int(ttl.Seconds()),
	}); err != nil {
		return err
	}
	n := e.Cfg.ExpiryLeases
	created := time.Now()
	res := Run(ctx, 8, n, 10*time.Minute, func(ctx context.Context, _ int) error {
		return e.Reader.Get(ctx, "flowcred/token/"+handle)
	})
	if res.Errors > 0 {
		return res.FirstErr
	}
	createdEnd := time.Now()
	if took := createdEnd.Sub(created); took > ttl {
		e.Table.Logf("creating %d leases took %s, longer than their ttl %s: the CPU figures miss early revocations", n, took, ttl)
	}
	pid := e.pluginPID()
	vCPU0, pCPU0 := CPUTime(e.V.PID()), CPUTime(pid)
	// Wait until the last lease expired, then poll until none is left.
	lastExpiry := createdEnd.Add(ttl)
	time.Sleep(time.Until(lastExpiry))
	prefix := "flowcred/token/" + handle + "/"
	var left int
	var reaped time.Time
	for {
		ids, err := listLeases(ctx, e.V.Client, prefix)
		if err != nil {
			return err
		}
		left = len(ids)
		if left == 0 {
			reaped = time.Now()
			break
		}
		if time.Since(lastExpiry) > 5*time.Minute {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	vCPU, pCPU := CPUTime(e.V.PID())-vCPU0, CPUTime(pid)-pCPU0
	createRate := float64(n) / createdEnd.Sub(created).Seconds()
	row := Row{
		Area: "expiry", Storage: e.V.Storage,
		Case: fmt.Sprintf("%s leases of %s expire", thousands(int64(n)), ttl),
	}
	if left > 0 {
		row.Result = fmt.Sprintf("%d leases still listed 5 min after expiry", left)
		row.Verdict = "NOT reaped"
	} else {
		lag := reaped.Sub(lastExpiry)
		per1k := func(d time.Duration) time.Duration { return d * 1000 / time.Duration(n) }
		row.Result = fmt.Sprintf("all gone %s after the last expiry; CPU vault %s, plugin %s (per 1,000 leases: vault %s, plugin %s)",
			ms(lag), ms(vCPU), ms(pCPU), ms(per1k(vCPU)), ms(per1k(pCPU)))
		row.Verdict = fmt.Sprintf("created at %s leases/s", thousands(int64(createRate)))
	}
	e.Table.Add(row)
	return nil
}
