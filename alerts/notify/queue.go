package notify

// entry is one queued event and the topic it goes to.
type entry struct {
	topic string
	ev    Event
}

// queue is the FIFO of events waiting for delivery. Its first inflight
// entries have been handed to the broker and await their PUBACK: they are
// never coalesced, and they leave the queue only through pop.
type queue struct {
	items    []entry // items[head:] are queued
	head     int
	inflight int
	limit    int
}

func (q *queue) len() int { return len(q.items) - q.head }

// push appends e. When the queue is full it first coalesces the entries
// not in flight, and returns how many were removed.
func (q *queue) push(e entry) (coalesced int) {
	if q.len() >= q.limit {
		coalesced = q.coalesce(e.topic)
	}
	q.items = append(q.items, e)
	return coalesced
}

// coalesce keeps, of the entries not in flight, the latest per topic (none
// for topic, whose next event is about to be appended), in their order.
func (q *queue) coalesce(topic string) int {
	tail := q.items[q.head+q.inflight:]
	seen := map[string]bool{topic: true}
	keep := make([]bool, len(tail))
	for i := len(tail) - 1; i >= 0; i-- {
		if !seen[tail[i].topic] {
			seen[tail[i].topic] = true
			keep[i] = true
		}
	}
	n := 0
	for i := range tail {
		if keep[i] {
			tail[n] = tail[i]
			n++
		}
	}
	clear(tail[n:]) // let the garbage collector have the labels
	q.items = q.items[:q.head+q.inflight+n]
	return len(tail) - n
}

// take marks up to max entries at the head as in flight and returns a copy
// of them. The previous take must have been settled by pop.
func (q *queue) take(max int) []entry {
	n := min(max, q.len())
	q.inflight = n
	return append([]entry(nil), q.items[q.head:q.head+n]...)
}

// pop removes the first n in-flight entries (delivered) and returns the
// rest of the last take to the queue.
func (q *queue) pop(n int) {
	clear(q.items[q.head : q.head+n])
	q.head += n
	q.inflight = 0
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > 1024 && q.head > len(q.items)/2:
		m := copy(q.items, q.items[q.head:])
		clear(q.items[m:])
		q.items, q.head = q.items[:m], 0
	}
}
