package com.netflix.conductor.client.automator;

import com.netflix.conductor.client.http.TaskClient;
import com.netflix.conductor.client.worker.Worker;

public class TaskRunnerConfigurer {
    public synchronized void init() {}
    public void shutdown() {}

    public static class Builder {
        public Builder(TaskClient taskClient, Iterable<Worker> workers) {}
        public Builder withThreadCount(int threadCount) { return this; }
        public TaskRunnerConfigurer build() { return new TaskRunnerConfigurer(); }
    }
}
