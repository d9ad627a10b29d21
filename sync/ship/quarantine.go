package ship

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edged-io/edged/wal"
)

// quarantine keeps the lines the server refused, a file per batch, within
// a bound on the number of files and their total size (the oldest go
// first). A file holds, for each line, a comment with the reason and the
// line itself:
//
//	# 400: partial write: field type conflict: … dropped=1
//	edged_reading,device=pi,series=s value=1,… 1700000000000000000
type quarantine struct {
	dir      string
	maxFiles int
	maxBytes int64
	seq      uint64
}

const quarantineExt = ".lp"

// put writes rejects to a new file and trims the directory. It returns the
// file's path.
func (q *quarantine) put(now time.Time, rejects []reject) (string, error) {
	if q.dir == "" || len(rejects) == 0 {
		return "", nil
	}
	if err := wal.MkdirAll(q.dir); err != nil {
		return "", fmt.Errorf("ship: quarantine: %w", err)
	}
	var b strings.Builder
	for _, r := range rejects {
		b.WriteString("# ")
		b.WriteString(strings.ReplaceAll(r.reason, "\n", " "))
		b.WriteByte('\n')
		b.WriteString(r.line)
		b.WriteByte('\n')
	}
	// Names sort by time, so trimming removes the oldest.
	q.seq++
	name := filepath.Join(q.dir, fmt.Sprintf("%020d-%06d%s", now.UnixNano(), q.seq%1e6, quarantineExt))
	if err := os.WriteFile(name, []byte(b.String()), 0o640); err != nil {
		return "", fmt.Errorf("ship: quarantine: %w", err)
	}
	return name, q.trim()
}

// trim removes the oldest files beyond the bounds; the newest file is
// always kept.
func (q *quarantine) trim() error {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("ship: quarantine: %w", err)
	}
	type file struct {
		name string
		size int64
	}
	var files []file
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), quarantineExt) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, file{e.Name(), info.Size()})
		total += info.Size()
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	for len(files) > 1 && (len(files) > q.maxFiles || total > q.maxBytes) {
		if err := os.Remove(filepath.Join(q.dir, files[0].name)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("ship: quarantine: %w", err)
		}
		total -= files[0].size
		files = files[1:]
	}
	return nil
}
