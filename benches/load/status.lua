-- GET a subject's status. Subjects are the ones the acceptance run created (load-1 to
-- load-20000), or those of a seeded ledger: ASSENT_LOAD_SUBJECTS=user-%07d:1000000 picks among
-- user-0000000 to user-0999999 (examples/seed_ledger.rs names them so).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ASSENT_LOAD_KEY")
local subjects = os.getenv("ASSENT_LOAD_SUBJECTS")
local format, count
if subjects and subjects ~= "" then
  format, count = subjects:match("^(.*):(%d+)$")
  if not format or tonumber(count) < 1 then
    error("ASSENT_LOAD_SUBJECTS: expected FORMAT:COUNT, such as user-%07d:1000000, not " .. subjects)
  end
end
request = function()
  local subject
  if format then
    subject = string.format(format, math.random(0, tonumber(count) - 1))
  else
    subject = "load-" .. math.random(1, 20000)
  end
  return wrk.format("GET", "/api/v1/subjects/" .. subject .. "/" .. (os.getenv("ASSENT_LOAD_READ") or "status"))
end
