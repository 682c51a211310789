// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL (ending in /api),
// CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET in its environment, read from the credential
// store; client.NewAPIClientFromEnv() reads them. Nothing secret lives in this directory.
//
// It polls with the SDK's task client rather than its TaskRunner: the TaskRunner always polls
// under the host name, and cannot be stopped between two tasks. This loop polls under the worker
// id 'provision' gives each process (ORKES_PROVISION_WORKER_ID), so that the tasks of a stopped
// process can be handed on, and on SIGTERM it finishes the task at hand, then exits.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/antihax/optional"
	"github.com/conductor-sdk/conductor-go/sdk/client"
	"github.com/conductor-sdk/conductor-go/sdk/model"
)

const (
	taskType     = "greetings"
	pollInterval = 100 * time.Millisecond
	pollTimeout  = 100 // milliseconds the server may hold a poll open
)

// greetings: input "name", output "greeting": "Hello, <name>".
func greetings(task *model.Task) map[string]interface{} {
	return map[string]interface{}{
		"greeting": fmt.Sprintf("Hello, %v", task.InputData["name"]),
	}
}

func workerID() string {
	if id := os.Getenv("ORKES_PROVISION_WORKER_ID"); id != "" {
		return id
	}
	host, err := os.Hostname()
	if err != nil {
		return "greetings-go"
	}
	return host
}

func main() {
	// Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes) end the loop: no new poll starts,
	// the task at hand is finished and reported.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var received os.Signal
	go func() { received = <-signals; cancel() }()

	tasks := &client.TaskResourceApiService{APIClient: client.NewAPIClientFromEnv()}
	id := workerID()
	log.Printf("greetings worker polling as %s", id)
	for ctx.Err() == nil {
		polled, response, err := tasks.BatchPoll(context.Background(), taskType, &client.TaskResourceApiBatchPollOpts{
			Workerid: optional.NewString(id),
			Count:    optional.NewInt32(1),
			Timeout:  optional.NewInt32(pollTimeout),
		})
		if err != nil {
			log.Printf("poll failed: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		if response.StatusCode == http.StatusNoContent || len(polled) == 0 {
			sleep(ctx, pollInterval)
			continue
		}
		for i := range polled {
			result := model.NewTaskResultFromTask(&polled[i])
			result.WorkerId = id
			result.Status = model.CompletedTask
			result.OutputData = greetings(&polled[i])
			if _, _, err := tasks.UpdateTask(context.Background(), result); err != nil {
				log.Printf("cannot report task %s: %v", polled[i].TaskId, err)
			}
		}
	}
	log.Printf("greetings worker stopped (%v)", received)
	if received == os.Interrupt {
		os.Exit(130) // as a shell reports Ctrl-C
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
