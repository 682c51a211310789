package com.netflix.conductor.client.worker;

import com.netflix.conductor.common.metadata.tasks.Task;
import com.netflix.conductor.common.metadata.tasks.TaskResult;

public interface Worker {
    String getTaskDefName();
    TaskResult execute(Task task);
}
