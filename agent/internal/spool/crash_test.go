package spool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-runs the test binary as a child that appends (and in
// one variant acknowledges) as fast as it can, and kills it with SIGKILL.
// The child reports on stdout, one line per event, written straight to the
// pipe after the call returned:
//
//	A <seq>          Append returned: the batch is durable
//	I <seq> <seq>..  about to Ack these (they may be gone after a kill)
//	K <seq> <seq>..  Ack returned: they must be gone
const crashEnv = "WEFT_SPOOL_CRASH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(crashEnv); mode != "" {
		crashChild(mode, os.Getenv(crashEnv+"_PATH"))
		return
	}
	os.Exit(m.Run())
}

const crashPayload = 512

func crashChild(mode, path string) {
	s, err := Open(path, Options{Logger: quietLogger()}) // default: fsync on
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	say := func(line string) {
		out.Lock()
		os.Stdout.WriteString(line + "\n")
		out.Unlock()
	}
	// Never outlive a parent that failed to kill us.
	time.AfterFunc(60*time.Second, func() { os.Exit(3) })
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				seq, err := s.Append(context.Background(), 10, func(seq uint64) ([]byte, error) {
					return payload(seq, crashPayload), nil
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(2)
				}
				say("A " + strconv.FormatUint(seq, 10))
			}
		})
	}
	if mode == "ack" {
		wg.Go(func() {
			var after uint64
			for {
				es, err := s.Peek(after, 1+rand.IntN(20))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child peek:", err)
					os.Exit(2)
				}
				if len(es) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				seqs := make([]string, len(es))
				ids := make([]uint64, len(es))
				for i, e := range es {
					seqs[i] = strconv.FormatUint(e.Seq, 10)
					ids[i] = e.Seq
					after = e.Seq
				}
				// Ack in a shuffled order, as PUBACKs may come.
				rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
				say("I " + strings.Join(seqs, " "))
				if err := s.Ack(ids...); err != nil {
					fmt.Fprintln(os.Stderr, "child ack:", err)
					os.Exit(2)
				}
				say("K " + strings.Join(seqs, " "))
			}
		})
	}
	wg.Wait()
}

type crashLog struct {
	appended map[uint64]bool
	intended map[uint64]bool
	acked    map[uint64]bool
	maxA     uint64
}

func runCrashChild(t *testing.T, mode, path string, r *rand.Rand) crashLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+mode, crashEnv+"_PATH="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := crashLog{appended: map[uint64]bool{}, intended: map[uint64]bool{}, acked: map[uint64]bool{}}
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue // a line cut by the kill
			}
			for _, w := range f[1:] {
				seq, err := strconv.ParseUint(w, 10, 64)
				if err != nil {
					continue
				}
				switch f[0] {
				case "A":
					log.appended[seq] = true
					log.maxA = max(log.maxA, seq)
					once.Do(func() { close(first) })
				case "I":
					log.intended[seq] = true
				case "K":
					log.acked[seq] = true
				}
			}
		}
		done <- sc.Err()
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child appended nothing in 30s; stderr:\n%s", stderr.String())
	}
	time.Sleep(time.Duration(20+r.IntN(300)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by our SIGKILL; stderr:\n%s", err, stderr.String())
	}
	return log
}

func TestCrashKill9(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	if os.Getenv("WEFT_SOAK") != "" {
		rounds = 200
	}
	for _, mode := range []string{"append", "ack"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spool.db")
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			everAppended := map[uint64]bool{}
			everAcked := map[uint64]bool{}
			everIntended := map[uint64]bool{}
			var lastMax uint64
			for round := range rounds {
				log := runCrashChild(t, mode, path, r)
				for seq := range log.appended {
					everAppended[seq] = true
				}
				for seq := range log.acked {
					everAcked[seq] = true
				}
				for seq := range log.intended {
					everIntended[seq] = true
				}

				s, err := Open(path, Options{Logger: quietLogger()})
				if err != nil {
					t.Fatalf("round %d: reopen after kill: %v", round, err)
				}
				es, err := s.Peek(0, 1<<30)
				if err != nil {
					t.Fatalf("round %d: peek: %v", round, err)
				}
				present := map[uint64]bool{}
				var prev uint64
				for _, e := range es {
					if e.Seq <= prev {
						t.Fatalf("round %d: entries out of order: %d after %d", round, e.Seq, prev)
					}
					prev = e.Seq
					if string(e.Data) != string(payload(e.Seq, crashPayload)) || e.Samples != 10 {
						t.Fatalf("round %d: entry %d damaged", round, e.Seq)
					}
					present[e.Seq] = true
				}
				// Every batch whose Append returned is present or acked.
				for seq := range everAppended {
					if !present[seq] && !everAcked[seq] && !everIntended[seq] {
						t.Fatalf("round %d: seq %d was appended (Append returned) but is gone", round, seq)
					}
				}
				// Every acknowledged batch stays gone.
				for seq := range everAcked {
					if present[seq] {
						t.Fatalf("round %d: seq %d was acked (Ack returned) but is back", round, seq)
					}
				}
				// No gaps: from 1 to the highest stored, every seq is stored,
				// or was (possibly) acked. Appends lost in flight are only
				// ever above the highest durable one.
				for seq := uint64(1); seq <= prev; seq++ {
					if !present[seq] && !everIntended[seq] {
						t.Fatalf("round %d: gap at seq %d below the highest stored %d", round, seq, prev)
					}
				}
				if prev < log.maxA && !everIntended[log.maxA] {
					t.Fatalf("round %d: highest stored %d below the highest appended %d", round, prev, log.maxA)
				}
				// The sequence continues above everything handed out.
				seq, err := s.Append(context.Background(), 1, func(seq uint64) ([]byte, error) { return payload(seq, crashPayload), nil })
				if err != nil {
					t.Fatalf("round %d: append after reopen: %v", round, err)
				}
				if seq <= log.maxA || seq <= lastMax {
					t.Fatalf("round %d: seq after reopen %d, not above %d", round, seq, max(log.maxA, lastMax))
				}
				// That one is acked at once so the next round's checks hold.
				if err := s.Ack(seq); err != nil {
					t.Fatal(err)
				}
				everIntended[seq], everAcked[seq] = true, true
				lastMax = seq
				st := s.Stats()
				if st.Batches != int64(len(es)) {
					t.Fatalf("round %d: stats say %d batches, Peek found %d", round, st.Batches, len(es))
				}
				s.Close()
				t.Logf("round %d: %d appended, %d acked by the child; %d stored", round, len(log.appended), len(log.acked), len(es))
			}
			if len(everAppended) < rounds {
				t.Fatalf("only %d appends in %d rounds: the child hardly ran", len(everAppended), rounds)
			}
		})
	}
}
