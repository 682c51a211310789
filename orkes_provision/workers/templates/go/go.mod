module greetings

go 1.19

require github.com/conductor-sdk/conductor-go v1.5.4
