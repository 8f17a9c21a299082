//go:build !unix

package load

import (
	"context"
	"errors"
	"fmt"
)

// Run needs raw non-blocking sockets, which this system lacks here.
func Run(ctx context.Context, cfg Config) (Result, error) {
	return Result{}, fmt.Errorf("load: %w", errors.ErrUnsupported)
}
