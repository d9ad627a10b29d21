package view

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func vrow(series string, size time.Duration, start int64, count float64) Row {
	v := nanRow()
	v[FieldIndex("count")] = count
	v[FieldIndex("sum")] = count * 2
	v[FieldIndex("applied_lsn")] = count
	return Row{Device: "pi", Series: series, Size: size, Start: start, End: start + int64(size), Values: v}
}

// TestMigrateMovesTheUnversionedLayoutIntoV1: the views of a release
// without versions become v1, whole, however often it runs and wherever
// an earlier run stopped.
func TestMigrateMovesTheUnversionedLayoutIntoV1(t *testing.T) {
	root := t.TempDir()
	sizes := []time.Duration{10 * time.Second, time.Minute}
	st, err := Open(root, sizes, 0) // the old layout: databases directly in root
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Hour).UnixNano()
	if err := st.Put([]Row{vrow("a", 10*time.Second, t0, 3), vrow("a", time.Minute, t0, 3)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// An interrupted earlier migration moved one entry already.
	if err := os.MkdirAll(filepath.Join(root, LegacyVersion), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "1m0s"), filepath.Join(root, LegacyVersion, "1m0s")); err != nil {
		t.Fatal(err)
	}
	moved, err := Migrate(root)
	if err != nil || !moved {
		t.Fatalf("Migrate: %v, %v", moved, err)
	}
	if moved, err := Migrate(root); err != nil || moved {
		t.Fatalf("second Migrate: %v, %v", moved, err)
	}
	for _, n := range []string{"10s", "1m0s", "series.json"} {
		if _, err := os.Stat(filepath.Join(root, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left in the root", n)
		}
	}
	vs, err := Versions(root)
	if err != nil || len(vs) != 1 || vs[0].Name != LegacyVersion || !slices.Equal(vs[0].Sizes, sizes) || vs[0].Series != 1 || vs[0].Bytes == 0 {
		t.Fatalf("versions %+v, %v", vs, err)
	}
	st, err = Open(VersionDir(root, LegacyVersion), sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Query("pi", "a", time.Minute, 0, math.MaxInt64)
	if err != nil || len(rows) != 1 || rows[0].Values[0] != 3 {
		t.Fatalf("after migration: %v, %v", rows, err)
	}
	// Both places holding an entry is not guessed at.
	os.MkdirAll(filepath.Join(root, "10s"), 0o750)
	if _, err := Migrate(root); err == nil {
		t.Fatal("a conflicting migration went ahead")
	}
}

func TestActiveLiveAndNames(t *testing.T) {
	root := t.TempDir()
	if v, err := Active(root); v != "" || err != nil {
		t.Fatalf("no ACTIVE: %q, %v", v, err)
	}
	if err := SetActive(root, "v2"); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("activating a missing version: %v", err)
	}
	os.MkdirAll(VersionDir(root, "v2"), 0o750)
	if err := SetActive(root, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := SetLive(root, "v1"); err != nil {
		t.Fatal(err)
	}
	if a, _ := Active(root); a != "v2" {
		t.Fatalf("active %q", a)
	}
	if l, _ := Live(root); l != "v1" {
		t.Fatalf("live %q", l)
	}
	for _, bad := range []string{"", "10s", "ACTIVE", "LIVE", "checkpoint", "checkpoint.damaged.1", ".locks", "a/b", "v 2", strings.Repeat("v", 65)} {
		if ValidVersion(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"v1", "v2", "fix-rule_3.1", "Main"} {
		if err := ValidVersion(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestLockVersionIsExclusive(t *testing.T) {
	root := t.TempDir()
	l, err := LockVersion(root, "v2", "edged replay")
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := Holder(root, "v2"); !ok || !strings.Contains(h, "edged replay") {
		t.Fatalf("holder %q, %v", h, ok)
	}
	if _, err := LockVersion(root, "v2", "edged run"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "edged replay") {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if _, ok := Holder(root, "v2"); ok {
		t.Fatal("still held")
	}
	l2, err := LockVersion(root, "v2", "edged run")
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

// TestSnapshotOfAStoreBeingWritten: a snapshot of a store its writer has
// open shows every window written so far, amendments' rewrites included,
// never changes the writer's files, and goes away on Close.
func TestSnapshotOfAStoreBeingWritten(t *testing.T) {
	root := t.TempDir()
	dir := VersionDir(root, "v2")
	sizes := []time.Duration{10 * time.Second}
	w, err := Open(dir, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Hour).UnixNano()
	var rows []Row
	for i := range 50 {
		rows = append(rows, vrow("a", 10*time.Second, t0+int64(i)*int64(10*time.Second), float64(i+1)))
	}
	if err := w.Put(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// An amendment rewrites an older window.
	amended := vrow("a", 10*time.Second, t0+int64(3*10*time.Second), 4)
	amended.Values[FieldIndex("late")] = 2
	amended.Values[FieldIndex("applied_lsn")] = 99
	if err := w.Put([]Row{amended}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil { // a checkpoint: snapshots see amendments from then on
		t.Fatal(err)
	}
	before := listFiles(t, dir)

	snap, err := OpenSnapshot(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := snap.Query("pi", "a", 10*time.Second, 0, math.MaxInt64)
	if err != nil || len(got) != 50 {
		t.Fatalf("snapshot: %d rows, %v", len(got), err)
	}
	if g := got[3].Values; g[FieldIndex("late")] != 2 || g[FieldIndex("applied_lsn")] != 99 || g[FieldIndex("count")] != 4 {
		t.Fatalf("the amended window reads %v", g)
	}
	if s := snap.Series(); len(s) != 1 || s[0].Series != "a" {
		t.Fatalf("series %v", s)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if after := listFiles(t, dir); !slices.Equal(before, after) {
		t.Fatalf("the snapshot changed the writer's files:\n%v\n%v", before, after)
	}
	if left, _ := os.ReadDir(filepath.Join(root, ".snapshots")); len(left) != 0 {
		t.Fatalf("snapshot copies left: %v", left)
	}
	// The writer goes on.
	if err := w.Put([]Row{vrow("a", 10*time.Second, t0+int64(50*10*time.Second), 1)}); err != nil {
		t.Fatal(err)
	}
	if rows, _ := w.Query("pi", "a", 10*time.Second, 0, math.MaxInt64); len(rows) != 51 {
		t.Fatalf("writer reads %d rows", len(rows))
	}
}

// listFiles lists every file under dir with its size and modification
// time.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, _ := d.Info()
		out = append(out, fmt.Sprintf("%s %d %s", p, fi.Size(), fi.ModTime()))
		return nil
	})
	return out
}
