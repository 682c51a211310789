package client

type APIClient struct{}

func NewAPIClientFromEnv() *APIClient { return &APIClient{} }
