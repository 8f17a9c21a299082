//go:build !unix

package sd

import (
	"errors"
	"fmt"
	"runtime"
)

// Windows, Plan 9, js and wasip1 have no service manager that speaks these
// protocols, and no inherited descriptors numbered from 3.
var errNoSystemd = fmt.Errorf("not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func send(addr, state string) error { return errNoSystemd }
func setCloexec(fd int) error       { return errNoSystemd }
