package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"
)

// BenchmarkFailover kills (-9) the node that owns the most cameras of a
// three-node cluster with six recording cameras, ten times, with the
// default lease (10 s): the time until each of its cameras is pulled again
// (owned by another node and online there), p50 and p95 over the kills.
// After each kill the node is started again and takes its share back.
func BenchmarkFailover(b *testing.B) {
	for b.Loop() {
		nc := newNodeCluster(b)
		nc.lease = 10 * time.Second
		sim, err := camsim.New(camsim.Config{N: 6, Addr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = sim.Run(ctx) }()
		ids := []string{"fail-a", "fail-b", "fail-c"}
		for _, id := range ids {
			nc.spawn(id)
		}
		for _, id := range ids {
			nc.waitUp(nc.nodes[id])
		}
		cams := createCameras(b, nc.nodes["fail-a"], sim, 6)
		nc.waitPulled(cams, time.Minute)
		var took []time.Duration
		for range 10 {
			per := map[string][]int64{}
			for c, o := range nc.owners() {
				per[o] = append(per[o], c)
			}
			victim := ids[0]
			for _, id := range ids {
				if len(per[id]) > len(per[victim]) {
					victim = id
				}
			}
			nc.nodes[victim].kill()
			took = append(took, nc.waitPulled(per[victim], time.Minute, victim))
			nc.start(victim)
			nc.waitPulled(cams, time.Minute)
		}
		cancel()
		slices.Sort(took)
		b.ReportMetric(took[len(took)/2].Seconds(), "p50-s")
		b.ReportMetric(took[len(took)*95/100].Seconds(), "p95-s")
		b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
		b.Logf("failovers (lease 10 s): %v", took)
	}
}

// BenchmarkRelayHop compares watching a camera on the node that pulls it
// with watching it on another node, which relays it from the owner's RTSP
// re-serve: the time to the first media segment of an MSE viewer (20 times
// each; the relay is started cold each time: --video-idle 1s) and the CPU
// both nodes use while one viewer watches for 10 s.
func BenchmarkRelayHop(b *testing.B) {
	for b.Loop() {
		nc := newNodeCluster(b)
		nc.extra = " --video-idle 1s"
		sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = sim.Run(ctx) }()
		for _, id := range []string{"hop-a", "hop-b"} {
			nc.spawn(id)
		}
		for _, id := range []string{"hop-a", "hop-b"} {
			nc.waitUp(nc.nodes[id])
		}
		cams := createCameras(b, nc.nodes["hop-a"], sim, 1)
		nc.waitPulled(cams, time.Minute)
		owner := nc.nodes[nc.owners()[cams[0]]]
		other := nc.nodes["hop-a"]
		if other == owner {
			other = nc.nodes["hop-b"]
		}
		firstSegment := func(n *gwNode) time.Duration {
			start := time.Now()
			v := watchMSE(b, ctx, n, cams[0])
			defer func() { v.close() }()
			if !v.waitSegments(2, time.Time{}, 30*time.Second) {
				b.Fatalf("no picture on %s", n.id)
			}
			return v.firstAt(2).Sub(start)
		}
		median := func(n *gwNode) time.Duration {
			var ds []time.Duration
			for range 20 {
				ds = append(ds, firstSegment(n))
				// On the other node the relay stops after --video-idle:
				// the next viewer starts it cold. (The owner records the
				// camera: it pulls it all the time, as owners do.)
				if n != owner {
					nc.waitIdle(n, cams[0], 30*time.Second)
				}
			}
			slices.Sort(ds)
			return ds[len(ds)/2]
		}
		onOwner, onOther := median(owner), median(other)
		b.ReportMetric(float64(onOwner.Microseconds())/1000, "owner-first-ms")
		b.ReportMetric(float64(onOther.Microseconds())/1000, "relay-first-ms")

		cpu := func(n *gwNode) time.Duration { return procCPU(b, n.cmd.Process.Pid) }
		watch := func(n *gwNode) float64 {
			v := watchMSE(b, ctx, n, cams[0])
			if !v.waitSegments(2, time.Time{}, 30*time.Second) {
				b.Fatalf("no picture on %s", n.id)
			}
			a0, o0 := cpu(owner), cpu(other)
			<-time.After(10 * time.Second)
			used := (cpu(owner) - a0 + cpu(other) - o0).Seconds() / 10
			v.close()
			if n != owner {
				nc.waitIdle(n, cams[0], 30*time.Second)
			}
			return used
		}
		direct, relayed := watch(owner), watch(other)
		b.ReportMetric(direct, "owner-cores")
		b.ReportMetric(relayed, "relay-cores")
		b.ReportMetric(relayed/direct, "relay/owner")
		cancel()
	}
}

// procCPU is the user+system CPU time process pid has used.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
