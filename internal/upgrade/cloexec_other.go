//go:build !unix

package upgrade

// closeOnExec does nothing where no descriptor is inherited by number.
func closeOnExec(int) {}
