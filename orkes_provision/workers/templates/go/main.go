// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL (ending in /api),
// CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET in its environment, read from the credential
// store; client.NewAPIClientFromEnv() reads them. Nothing secret lives in this directory.
package main

import (
	"fmt"
	"log"
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
	apiClient := client.NewAPIClientFromEnv()
	taskRunner := worker.NewTaskRunnerWithApiClient(apiClient)
	if err := taskRunner.StartWorker("greetings", greetings, 1, 100*time.Millisecond); err != nil {
		log.Fatalf("cannot start the greetings worker: %v", err)
	}
	log.Println("greetings worker polling")
	taskRunner.WaitWorkers()
}
