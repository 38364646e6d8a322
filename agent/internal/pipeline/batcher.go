package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftiot/weft/protocols"
	"github.com/weftiot/weft/wire"
)

// Appender is where batches go: the spool. Append must store the message
// durably before it returns; encode is called with the batch's sequence
// number and returns the encoded message, which Append must copy before it
// returns (the Batcher encodes every batch into the same buffer).
type Appender interface {
	Append(ctx context.Context, samples int, encode func(seq uint64) ([]byte, error)) (uint64, error)
}

// Options configure a Batcher.
type Options struct {
	Agent, Site string
	// MaxSamples closes a batch when it holds this many samples (default 1000).
	MaxSamples int
	// FlushInterval closes a batch this long after its first sample arrived
	// (default 1s).
	FlushInterval time.Duration
	// AppendTimeout bounds one Append while closing (default 10s).
	AppendTimeout time.Duration
	Logger        *slog.Logger
}

// Stats are the Batcher's counters since it started.
type Stats struct {
	Samples      uint64 // samples added
	Batches      uint64 // batches appended to the spool
	Appended     uint64 // samples in those batches
	AppendErrors uint64 // failed Appends (the spool counts ErrFull drops itself)
	Lost         uint64 // samples in failed Appends
}

// Batcher groups samples from every device into batches by count and by
// time, encodes each batch once in the wire format with the sequence number
// the spool gives it, and appends it. Batches are appended one at a time, in
// the order they were closed, so samples of one device keep their order.
type Batcher struct {
	app  Appender
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	room    *sync.Cond      // signalled when the writer takes from queue
	buf     []wire.Sample   // the open batch
	queue   [][]wire.Sample // closed batches, oldest first
	closed  bool
	ready   chan struct{} // a batch was queued
	kick    chan struct{} // a sample went into an empty open batch
	closing chan struct{} // Close was called
	done    chan struct{} // the writer has finished
	free    sync.Pool     // *[]wire.Sample for reuse

	samples, batches, appended, errs, lost atomic.Uint64
	lastLog                                time.Time // of an append error; writer goroutine only
}

// maxQueued is how many closed batches may wait for the spool before Add
// blocks.
const maxQueued = 4

// NewBatcher starts a Batcher writing into app. Close it to flush.
func NewBatcher(app Appender, opts Options) *Batcher {
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 1000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Batcher{
		app:     app,
		opts:    opts,
		log:     opts.Logger,
		ready:   make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	b.room = sync.NewCond(&b.mu)
	b.buf = b.newBuf()
	go b.run()
	return b
}

// Emitter returns the emit function of one device: samples go through the
// device's filter, and those to report into the batch.
func (b *Batcher) Emitter(f *Filter) protocols.Emit {
	if f == nil {
		return b.Add
	}
	return func(s wire.Sample) {
		if f.Apply(&s) {
			b.Add(s)
		}
	}
}

// Add puts one sample into the open batch. It blocks only while the spool is
// behind by more than a few full batches. Samples added after Close are
// dropped and counted as lost.
func (b *Batcher) Add(s wire.Sample) {
	b.mu.Lock()
	for len(b.queue) >= maxQueued && !b.closed {
		b.room.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		b.lost.Add(1)
		return
	}
	b.samples.Add(1)
	b.buf = append(b.buf, s)
	n := len(b.buf)
	if n >= b.opts.MaxSamples {
		b.queue = append(b.queue, b.buf)
		b.buf = b.newBuf()
		b.mu.Unlock()
		signal(b.ready)
		return
	}
	b.mu.Unlock()
	if n == 1 {
		signal(b.kick)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close appends what is buffered and stops the Batcher; the sources must
// have stopped calling Add. It returns when the last batch is in the spool,
// or with ctx's error when ctx ends first.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.closing)
		b.room.Broadcast()
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pipeline: flushing into the spool: %w", ctx.Err())
	}
}

// Stats returns the counters.
func (b *Batcher) Stats() Stats {
	return Stats{
		Samples:      b.samples.Load(),
		Batches:      b.batches.Load(),
		Appended:     b.appended.Load(),
		AppendErrors: b.errs.Load(),
		Lost:         b.lost.Load(),
	}
}

func (b *Batcher) newBuf() []wire.Sample {
	if p, ok := b.free.Get().(*[]wire.Sample); ok {
		return (*p)[:0]
	}
	return make([]wire.Sample, 0, b.opts.MaxSamples)
}

// next pops the oldest closed batch; with open set, it first closes the open
// batch (when it has samples). It returns nil when there is nothing.
func (b *Batcher) next(open bool) []wire.Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	if open && len(b.buf) > 0 {
		b.queue = append(b.queue, b.buf)
		b.buf = b.newBuf()
	}
	if len(b.queue) == 0 {
		return nil
	}
	batch := b.queue[0]
	b.queue[0] = nil
	b.queue = b.queue[1:]
	b.room.Broadcast()
	return batch
}

func (b *Batcher) run() {
	defer close(b.done)
	timer := time.NewTimer(b.opts.FlushInterval)
	timer.Stop()
	armed := false
	var enc []byte
	drain := func(open bool) {
		for batch := b.next(open); batch != nil; batch = b.next(false) {
			enc = b.write(batch, enc)
		}
	}
	for {
		select {
		case <-b.ready:
			drain(false)
		case <-b.kick:
			if !armed {
				timer.Reset(b.opts.FlushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			drain(true)
		case <-b.closing:
			drain(true)
			return
		}
	}
}

// write encodes and appends one batch. enc is a scratch buffer that is
// returned for reuse: the spool copies the bytes into its record (one copy
// of each batch fewer to make and collect; at low sample rates garbage
// collection is a good part of the agent's CPU).
func (b *Batcher) write(samples []wire.Sample, enc []byte) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.AppendTimeout)
	defer cancel()
	batch := wire.Batch{Agent: b.opts.Agent, Site: b.opts.Site, Samples: samples}
	_, err := b.app.Append(ctx, len(samples), func(seq uint64) ([]byte, error) {
		batch.Seq = seq
		enc = wire.AppendBatch(enc[:0], &batch)
		return enc, nil
	})
	n := uint64(len(samples))
	if err != nil {
		b.errs.Add(1)
		b.lost.Add(n)
		// One line per 10s at most: a full spool refuses every batch.
		if now := time.Now(); now.Sub(b.lastLog) >= 10*time.Second {
			b.lastLog = now
			b.log.Error("pipeline: appending a batch to the spool failed; its samples are lost",
				"samples", n, "failed_batches", b.errs.Load(), "err", err)
		}
	} else {
		b.batches.Add(1)
		b.appended.Add(n)
	}
	clear(samples) // drop string references before reuse
	samples = samples[:0]
	b.free.Put(&samples)
	return enc
}
