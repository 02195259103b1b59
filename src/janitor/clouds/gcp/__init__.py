"""Google Cloud: Compute Engine GPU VMs, Vertex AI endpoints, Workbench instances."""
