package config

// ByteSize is a size in bytes, written in the file as 1GiB, 512MiB, 64KiB,
// 10MB or a plain number of bytes.
type ByteSize int64
