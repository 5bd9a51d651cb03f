"""What a job needs at run time on a node, below the client: payload packing (cloudpickle),
``provisional_result``/``send_file``/``job_context``, and ``GridExecutor``'s call runner.
The client re-exports what users call (``gridlib.provisional_result`` ...)."""
