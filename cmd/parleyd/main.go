// Command parleyd runs a Parley node. See `parleyd help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-chat/parley/node/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful shutdown; a second one forces exit.
		<-ctx.Done()
		stop()
		force := make(chan os.Signal, 1)
		signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
		<-force
		fmt.Fprintln(os.Stderr, "parleyd: second signal, exiting now")
		os.Exit(2)
	}()
	err := daemon.Main(ctx, daemon.Env{Args: os.Args[1:], Environ: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		if !errors.Is(err, daemon.ErrUsage) {
			fmt.Fprintf(os.Stderr, "parleyd: %v\n", err)
		}
		os.Exit(1)
	}
}
