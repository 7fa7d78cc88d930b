module github.com/apiguard/apiguard

go 1.26.8

require (
	github.com/planetscale/vtprotobuf v0.6.0
	google.golang.org/protobuf v1.36.12
)

require github.com/gaissmai/bart v0.30.0 // indirect
