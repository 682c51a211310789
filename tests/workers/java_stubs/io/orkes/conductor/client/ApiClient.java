package io.orkes.conductor.client;

import com.netflix.conductor.client.http.ConductorClient;

public class ApiClient extends ConductorClient {
    public ApiClient() {}
    public ApiClient(String rootUri, String keyId, String secret) {}
}
