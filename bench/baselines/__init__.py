"""Reference implementations the cnnx benchmarks compare against (torch, naive loops)."""
