// GB/T 28181 channels as the camera registry keeps them: a camera whose
// main_url is gb28181://DEVICEID/CHANNELID (two 20-digit IDs) is a channel of
// that device, registered with the platform over SIP.

const GB_URL = /^gb28181:\/\/(\d{20})\/(\d{20})$/;

/** gbChannelOf is {device, channel} of a camera's main_url, or null for one that is not a GB/T 28181 channel. */
export function gbChannelOf(url) {
  const m = GB_URL.exec(String(url ?? ''));
  return m ? { device: m[1], channel: m[2] } : null;
}

/** isGBCamera reports whether camera cam (an API camera) is a GB/T 28181 channel. */
export function isGBCamera(cam) {
  return gbChannelOf(cam?.main_url) !== null;
}
