"""App-wide Api methods: jobs (status, cancel) and a health check."""
from ..envelope import public
from ..validate import params_dict


class AppMethods:
    @public
    def ping(self, params=None):
        params_dict(params)
        return {"pong": True}

    @public
    def job_status(self, params=None):
        return self._state.jobs.get(params_dict(params).get("job_id")).status()

    @public
    def cancel_job(self, params=None):
        job = self._state.jobs.cancel(params_dict(params).get("job_id"))
        return {"job_id": job.id, "state": job.state}

    @public
    def running_jobs(self, params=None):
        params_dict(params)
        return {"jobs": [j.status() for j in self._state.jobs.running()]}
