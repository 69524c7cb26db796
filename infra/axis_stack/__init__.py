"""The embedded single-machine stack (broker, PostgreSQL, S3 server, MLflow) and the migrations runner."""

from axis_stack.migrate import apply_migrations
from axis_stack.stack import (
    ComponentStatus,
    StackInfo,
    down,
    restart,
    stack_info,
    start_component,
    status,
    stop_component,
    up,
)

__all__ = [
    "ComponentStatus",
    "StackInfo",
    "apply_migrations",
    "down",
    "restart",
    "stack_info",
    "start_component",
    "status",
    "stop_component",
    "up",
]
