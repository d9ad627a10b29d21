package reconcile

// SetTestHookWindow sets a function run before each window (nil: none).
func SetTestHookWindow(f func()) { testHookWindow = f }
