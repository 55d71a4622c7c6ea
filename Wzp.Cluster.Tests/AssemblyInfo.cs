// Cluster tests measure nothing, but they do wait on short timeouts: two clusters (the shared fixture and a
// test's own) competing for two cores would only make them slower and shakier.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
