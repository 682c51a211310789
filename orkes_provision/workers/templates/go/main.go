// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL (ending in /api),
// CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET in its environment, read from the credential
// store; client.NewAPIClientFromEnv() reads them. Nothing secret lives in this directory.
package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/conductor-sdk/conductor-go/sdk/client"
	"github.com/conductor-sdk/conductor-go/sdk/model"
	"github.com/conductor-sdk/conductor-go/sdk/worker"
)

// greetings: input "name", output "greeting": "Hello, <name>".
func greetings(task *model.Task) (interface{}, error) {
	return map[string]interface{}{
		"greeting": fmt.Sprintf("Hello, %v", task.InputData["name"]),
	}, nil
}

func main() {
	// Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes) end the wait below.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	apiClient := client.NewAPIClientFromEnv()
	taskRunner := worker.NewTaskRunnerWithApiClient(apiClient)
	if err := taskRunner.StartWorker("greetings", greetings, 1, 100*time.Millisecond); err != nil {
		log.Fatalf("cannot start the greetings worker: %v", err)
	}
	log.Println("greetings worker polling")
	received := <-signals
	// The SDK's pollers cannot be stopped, only paused: poll no more, let the task at hand finish.
	taskRunner.Pause("greetings")
	time.Sleep(time.Second)
	log.Printf("greetings worker stopped (%v)", received)
	if received == os.Interrupt {
		os.Exit(130) // as a shell reports Ctrl-C
	}
}
