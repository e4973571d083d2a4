#!/bin/sh
exec /home/user/bin/wsgi-fcgi --app myapp.wsgi:application --chdir /home/user/app --python /usr/bin/python3 --workers 2 --touch-reload /home/user/app/reload.txt
