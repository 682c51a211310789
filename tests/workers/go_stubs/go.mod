module github.com/conductor-sdk/conductor-go

go 1.17
