"""Benchmarks and test payload builders for the gateway and the reconciliation engine.

Part of the development distribution (root pyproject.toml), never of the Pi's runtime
package: `cart-bench reconcile|handler|ingest|latency|frames|recovery` (see docs/gateway.md).
"""
