package model

type Task struct {
	InputData map[string]interface{} `json:"inputData,omitempty"`
}

type ExecuteTaskFunction func(t *Task) (interface{}, error)
