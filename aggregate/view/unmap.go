package view

import (
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/nakabonne/tstorage"
)

// tstorage maps every flushed partition's data file into memory and never
// unmaps it: not when its retention removes the partition, not at Close.
// A long-running daemon that rolls heads (lanes.go) and opens snapshots
// (version.go) would collect mappings — address space, and the disk space
// of removed files, held until it exits. unmap releases the mappings of a
// closed database. tstorage has no API for it, so it walks tstorage's
// (v0.3.6) partition list by reflection; TestUnmapReleasesMappings fails
// if an upgrade changes that layout, and unmap then reports an error
// rather than guessing.
//
// The database must be closed and no Select may be running on it.

var errLayout = errors.New("view: tstorage's partition list is not laid out as unmap expects")

func unmap(db tstorage.Storage) (n int, err error) {
	defer func() {
		if r := recover(); r != nil { // a reflect panic: the layout changed
			n, err = 0, fmt.Errorf("%w: %v", errLayout, r)
		}
	}()
	v := reflect.ValueOf(db)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, errLayout
	}
	list := v.Elem().FieldByName("partitionList")
	if !list.IsValid() || list.Kind() != reflect.Interface || list.IsNil() {
		return 0, errLayout
	}
	impl := list.Elem()
	if impl.Kind() != reflect.Pointer || impl.Elem().Kind() != reflect.Struct {
		return 0, errLayout
	}
	node := impl.Elem().FieldByName("head")
	for node.IsValid() && node.Kind() == reflect.Pointer && !node.IsNil() {
		val := node.Elem().FieldByName("val")
		if !val.IsValid() || val.Kind() != reflect.Interface {
			return n, errLayout
		}
		if p := val.Elem(); p.Kind() == reflect.Pointer && p.Elem().Type().Name() == "diskPartition" {
			m := p.Elem().FieldByName("mappedFile")
			if !m.IsValid() || m.Kind() != reflect.Slice || m.Type().Elem().Kind() != reflect.Uint8 {
				return n, errLayout
			}
			if m.Len() > 0 {
				b := unsafe.Slice((*byte)(m.UnsafePointer()), m.Len())
				if err := syscall.Munmap(b); err != nil {
					return n, fmt.Errorf("view: unmap a partition: %w", err)
				}
				// The partition is unreachable once its database is closed
				// and dropped; empty its slice all the same, so that a
				// second unmap of it is a no-op.
				reflect.NewAt(m.Type(), unsafe.Pointer(m.UnsafeAddr())).Elem().SetLen(0)
				n++
			}
		}
		node = node.Elem().FieldByName("next")
	}
	return n, nil
}
