-- Runs once, when the postgres container initialises an empty volume: MLflow's own database.
-- The AXIS tables are created by the migrate job (python -m axis_stack migrate), not here.
CREATE DATABASE mlflow OWNER axis;
