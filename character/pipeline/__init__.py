"""The resumable pipeline: stages, their manifests, and the runner that chains them."""
