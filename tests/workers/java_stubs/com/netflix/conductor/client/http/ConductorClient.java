package com.netflix.conductor.client.http;

public class ConductorClient {
    public ConductorClient() {}
}
