package worker

import (
	"time"

	"github.com/conductor-sdk/conductor-go/sdk/client"
	"github.com/conductor-sdk/conductor-go/sdk/model"
)

type TaskRunner struct{}

func NewTaskRunnerWithApiClient(apiClient *client.APIClient) *TaskRunner { return &TaskRunner{} }

func (c *TaskRunner) StartWorker(taskName string, executeFunction model.ExecuteTaskFunction, batchSize int,
	pollInterval time.Duration) error {
	return nil
}

func (c *TaskRunner) WaitWorkers() {}

func (c *TaskRunner) Pause(taskName string) {}
