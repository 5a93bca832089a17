// Package nats implements pathstats.Queue on NATS JetStream, either on a
// server embedded in the process (StartEmbedded, file store under the data
// dir) or on an external server or cluster (OpenURL).
//
// Batches go into one WorkQueue stream with Nats-Msg-Id set to the batch id
// (so duplicates inside the stream's window are dropped) and are read by one
// durable pull consumer with explicit acks; an acknowledged message is
// removed from the stream.
package nats
