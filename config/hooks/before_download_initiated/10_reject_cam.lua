-- Refuses camera rips: a release whose name says CAM, TS or TELESYNC is rejected, and
-- the caller is told which hook said no and why.

local BAD = { "cam", "camrip", "hdcam", "ts", "hdts", "telesync", "telecine" }

function hook(event)
  local release = event.data.release
  if type(release) ~= "table" or type(release.title) ~= "string" then return nil end
  local name = " " .. string.lower(release.title) .. " "
  for _, word in ipairs(BAD) do
    -- Whole words only: separators are anything but letters and digits.
    if string.find(name, "[^%w]" .. word .. "[^%w]") then
      reject("camera rip (" .. string.upper(word) .. "): " .. release.title)
    end
  end
  return nil
end
