package com.netflix.conductor.common.metadata.tasks;

import java.util.Map;

public class Task {
    public Map<String, Object> getInputData() { return null; }
}
