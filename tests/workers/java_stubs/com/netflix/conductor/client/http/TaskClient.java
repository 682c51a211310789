package com.netflix.conductor.client.http;

public class TaskClient {
    public TaskClient(ConductorClient client) {}
}
