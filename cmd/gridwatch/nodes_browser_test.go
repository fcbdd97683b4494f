package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"gridwatch/camera/camsim"
)

// TestNodesInBrowser runs two real nodes on one database with two recording
// cameras (and a third node killed before them), and opens the dashboard in
// headless Chromium on a node that does not pull a camera
// (assets/e2e/nodes.mjs): the camera's card names the node that pulls it,
// and its player plays there — the picture comes through the relay from
// its owner; Admin → Nodes lists both nodes alive, the one that answered
// marked as such, and the killed one dead, in red, after them.
func TestNodesInBrowser(t *testing.T) {
	chromium := browserReady(t)
	nc := newNodeCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sim, err := camsim.New(camsim.Config{N: 2, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sim.Run(ctx) }()

	a := nc.start("node-a")
	b := nc.start("node-b")
	// kill -9 node-c before there are cameras (it takes none): its row
	// stays, dead once its beat lapses.
	dead := nc.start("node-c")
	if err := dead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-dead.done
	for deadline := time.Now().Add(nodeLease + 10*time.Second); ; {
		alive := nc.query(`SELECT last_beat + lease_ms * interval '1 millisecond' > now() FROM nodes WHERE id = $1`, dead.id)
		if len(alive) == 1 && alive[0][0] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s killed, its row still says alive: %v", dead.id, alive)
		}
		time.Sleep(50 * time.Millisecond) // polling its row as an operator would
	}
	cams := createCameras(t, a, sim, 2)
	nc.waitPulled(cams, 60*time.Second)
	// The rendezvous hash decides who pulls what: the dashboard is opened
	// on the other node, so that what it plays is relayed.
	owners := nc.owners()
	cam := cams[0]
	for _, c := range cams {
		if owners[c] == a.id {
			cam = c
			break
		}
	}
	owner, viewer := nc.nodes[owners[cam]], a
	if owner == nil {
		t.Fatalf("camera %d has no owner: %v", cam, owners)
	}
	if owner == a {
		viewer = b
	}
	t.Logf("camera %d (of %v) is pulled by %s; the browser opens %s", cam, owners, owner.id, viewer.id)

	cmd := exec.CommandContext(ctx, "node", "e2e/nodes.mjs", viewer.url, artifactDir(t), testAdminToken,
		strconv.FormatInt(cam, 10), owner.id, viewer.id+","+owner.id, dead.id)
	cmd.Dir = "../../assets"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "E2E_TIMEOUT_MS=60000")
	out, err := cmd.CombinedOutput()
	t.Logf("e2e/nodes.mjs: %s", out)
	if err != nil {
		t.Fatalf("e2e/nodes.mjs failed: %v", err)
	}
	// The browser's node relayed the camera: it never took it over.
	if got := nc.owners()[cam]; got != owner.id {
		t.Errorf("camera %d is owned by %q after the browser watched it on %s, want %s", cam, got, viewer.id, owner.id)
	}
}
