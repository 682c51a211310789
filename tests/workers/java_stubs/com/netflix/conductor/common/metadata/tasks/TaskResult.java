package com.netflix.conductor.common.metadata.tasks;

public class TaskResult {
    public enum Status { IN_PROGRESS, FAILED, FAILED_WITH_TERMINAL_ERROR, COMPLETED }
    public TaskResult(Task task) {}
    public TaskResult addOutputData(String key, Object value) { return this; }
    public void setStatus(Status status) {}
}
